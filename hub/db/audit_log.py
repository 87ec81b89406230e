"""The audit log's repository: append, read, page, count and verify, in SQL."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from hub.db.audit_rows import AUDIT_INSERT, AUDIT_SELECT, audit_row, record_of, seq_of
from hub.db.audit_stretches import helper_count, reopen_target, verify_stretches
from hub.db.sql import Row, Sql
from hub.domain.audit import (
    GENESIS,
    AuditEntry,
    AuditRecord,
    ChainReport,
    ChainVerifier,
    link_stored,
)
from hub.domain.checkpoints import Checkpoint
from hub.domain.ids import PartnerId
from hub.ports import AuditQuery

STREAM_BATCH = 5000


class SqlAudit:
    """The audit log inside one transaction.

    Appending needs the transaction to hold the database's write lock before anything
    is read: ``BEGIN IMMEDIATE`` on SQLite, the head row ``FOR UPDATE`` on PostgreSQL
    (``hub.db.database``'s write groups take both before their first job). The head is
    then read once and kept here: each append is one ``INSERT``, and ``finish`` writes
    the head row once, before the commit (three statements an append before: about
    6 µs on SQLite, two round trips on PostgreSQL). Nobody else can move the head
    meanwhile, and the next transaction reads it again: other processes append between.
    A job undone to its savepoint gives the head back with ``restore``.
    """

    def __init__(self, sql: Sql) -> None:
        self._sql = sql
        self._head: tuple[int, str] | None = None
        """seq and hash of the newest record as this transaction has it, once read."""
        self._stored: tuple[int, str] | None = None
        """What the head row holds (in this transaction), once read."""

    def append(self, entry: AuditEntry, *, tag: Callable[[str], str] | None = None) -> AuditRecord:
        seq, prev = self._head or self._read_head()
        record, lists = link_stored(seq + 1, entry, prev)
        row = audit_row(record, lists)
        row["tag"] = None if tag is None else tag(record.hash)
        self._sql.run(AUDIT_INSERT, row)
        self._head = (record.seq, record.hash)
        return record

    def held(self, seq: int, head: str) -> None:
        """The head row as the transaction's lock statement read it (saves reading it again)."""
        self._head = self._stored = (seq, head)

    def position(self) -> tuple[int, str] | None:
        """Where the chain stands in this transaction (for ``restore``)."""
        return self._head

    def restore(self, position: tuple[int, str] | None) -> None:
        """The chain back where ``position`` was: the records appended since were undone."""
        self._head = position

    def finish(self) -> None:
        """Write the head row when appends moved it; before the commit."""
        if self._head is not None and self._head != self._stored:
            seq, head = self._head
            self._sql.run(
                "UPDATE audit_head SET seq = :seq, hash = :hash WHERE id = 1",
                {"seq": seq, "hash": head},
            )
            self._stored = self._head

    def _read_head(self) -> tuple[int, str]:
        if self._stored is None:
            row = self._sql.row("SELECT seq, hash FROM audit_head WHERE id = 1")
            if row is None:
                raise LookupError("the audit head row is missing: run `ketenhub db upgrade`")
            self._stored = (int(row[0]), str(row[1]))
        self._head = self._stored
        return self._stored

    def get(self, seq: int) -> AuditRecord | None:
        row = self._sql.row(f"{AUDIT_SELECT} WHERE seq = :seq", {"seq": seq})
        return None if row is None else record_of(row)

    def head(self) -> tuple[int, str]:
        if self._head is not None:
            return self._head
        row = self._sql.row("SELECT seq, hash FROM audit_head WHERE id = 1")
        return (0, GENESIS) if row is None else (int(row[0]), str(row[1]))

    def hash_at(self, seq: int) -> str | None:
        row = self._sql.row("SELECT hash FROM audit_events WHERE seq = :seq", {"seq": seq})
        return None if row is None else str(row[0])

    def tags_after(self, seq: int) -> Sequence[tuple[int, str, str | None]]:
        return [
            (seq_of(r[0]), str(r[1]), None if r[2] is None else str(r[2]))
            for r in self._sql.rows(
                "SELECT seq, hash, tag FROM audit_events WHERE seq > :seq ORDER BY seq",
                {"seq": seq},
            )
        ]

    def legacy_through(self) -> int:
        # No row: a database not yet at 0005 has no record of its prefix, so none is excused.
        row = self._sql.row("SELECT untagged_through FROM audit_legacy WHERE id = 1")
        return 0 if row is None or row[0] is None else max(0, int(row[0]))

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        # Workers that stop together may sign the same head: the first one stays.
        self._sql.run(
            "INSERT INTO audit_checkpoints (seq, head, at, jws) VALUES (:seq, :head, :at, :jws) "
            "ON CONFLICT (seq) DO NOTHING",
            checkpoint.as_dict(),
        )

    def latest_checkpoint(self) -> Checkpoint | None:
        row = self._sql.row(
            "SELECT seq, head, at, jws FROM audit_checkpoints ORDER BY seq DESC LIMIT 1"
        )
        if row is None:
            return None
        return Checkpoint(seq_of(row[0]), str(row[1]), str(row[2]), str(row[3]))

    def page(self, query: AuditQuery, limit: int) -> Sequence[AuditRecord]:
        conditions: list[str] = []
        params: dict[str, Any] = {"limit": limit}

        def where(condition: str, **values: object) -> None:
            conditions.append(condition)
            params.update(values)

        if query.participant is not None:
            where("participant = :participant", participant=query.participant)
        if query.partner is not None:
            where("(requester = :partner OR source = :partner)", partner=query.partner)
        if query.visible_to is not None:
            where("(requester = :visible OR source = :visible)", visible=query.visible_to)
        if query.purpose is not None:
            where("purpose = :purpose", purpose=query.purpose)
        if query.decision is not None:
            where("decision = :decision", decision=str(query.decision))
        if query.since is not None:
            where("at >= :since", since=query.since)
        if query.until is not None:
            where("at < :until", until=query.until)
        if query.before_seq is not None:
            where("seq < :before", before=query.before_seq)
        matching = " WHERE " + " AND ".join(conditions) if conditions else ""
        if query.participant is not None or self._reaches_newest(query):
            # The participant's index, or the key walked back from the newest record,
            # meets the page's records in order: the first `limit` found are the page.
            statement = f"{AUDIT_SELECT}{matching} ORDER BY seq DESC LIMIT :limit"
        else:
            # A period that ends before the newest record: walking the log back to it
            # (what PostgreSQL plans, counting on an even spread) reads everything after
            # it. Its seqs come from ix_audit_time instead ("+seq" is not the key's
            # order), the newest kept, and only those records are read.
            chosen = f"SELECT seq FROM audit_events{matching} ORDER BY +seq DESC LIMIT :limit"
            statement = f"{AUDIT_SELECT} WHERE seq IN ({chosen}) ORDER BY seq DESC"
        return [record_of(row) for row in self._sql.rows(statement, params)]

    def _reaches_newest(self, query: AuditQuery) -> bool:
        """Whether the period asked for holds the newest record the page could show."""
        if query.since is None and query.until is None:
            return True
        statement = "SELECT at FROM audit_events"
        params: dict[str, Any] = {}
        if query.before_seq is not None:
            statement += " WHERE seq < :before"
            params["before"] = query.before_seq
        newest = self._sql.row(statement + " ORDER BY seq DESC LIMIT 1", params)
        if newest is None or not isinstance(newest[0], str):
            return True
        at = newest[0]
        return (query.since is None or query.since <= at) and (
            query.until is None or at < query.until
        )

    def counts(
        self, *, since: str, until: str, visible_to: PartnerId | None = None
    ) -> Sequence[tuple[str, str, int]]:
        statement = (
            "SELECT requester, decision, count(*) FROM audit_events "
            "WHERE at >= :since AND at < :until"
        )
        params: dict[str, Any] = {"since": since, "until": until}
        if visible_to is not None:
            statement += " AND (requester = :visible OR source = :visible)"
            params["visible"] = visible_to
        statement += " GROUP BY requester, decision ORDER BY requester, decision"
        return [(str(r), str(d), int(n)) for r, d, n in self._sql.rows(statement, params)]

    def stream(self) -> Iterator[AuditRecord]:
        for rows in self._batches():
            for row in rows:
                yield record_of(row)

    def verify(self) -> ChainReport:
        """The chain check of ``hub.domain.audit`` over every record as stored.

        A large log is cut into stretches of seq that this process and a helper process
        per further core check side by side; ``join_segments`` tells what they prove
        together. What the stretches cannot tell (a damaged log) is checked in one pass.
        """
        top = self._sql.row("SELECT max(seq) FROM audit_events")
        helpers = helper_count(top[0] if top is not None else None) if sys.executable else 0
        target = reopen_target(self._sql) if helpers else None
        if target is not None and top is not None:
            report = verify_stretches(self._sql, target, top[0], helpers)
            if report is not None:
                return report
        verifier = ChainVerifier()
        for rows in self._batches():
            if not verifier.feed_stored(rows, record_of):
                break
        return verifier.report()

    def _batches(self) -> Iterator[list[Row]]:
        # Keyset batches rather than one server-side cursor: constant memory on both
        # databases, and no long-lived cursor.
        last = 0
        while True:
            rows = self._sql.rows(
                f"{AUDIT_SELECT} WHERE seq > :last ORDER BY seq LIMIT {STREAM_BATCH}",
                {"last": last},
            )
            if not rows:
                return
            yield rows
            last = seq_of(rows[-1][0])
            if last < 0:
                return
