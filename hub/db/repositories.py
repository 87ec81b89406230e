"""Repositories over one DBAPI connection: they run inside the caller's transaction.

The statements are written once, as SQL that SQLite and PostgreSQL both speak, with
``:named`` parameters (``Sql`` turns them into psycopg's style). They go straight to
the driver: on the exchange path a SQLAlchemy Core statement cost about ten times
the database's own work. ``hub.db.tables`` stays the schema's definition (Alembic).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from consent.model import Consent
from hub.domain.audit import (
    GENESIS,
    STORED_MEMBERS,
    AuditEntry,
    AuditRecord,
    ChainReport,
    ChainVerifier,
    Segment,
    join_segments,
    link,
)
from hub.domain.checkpoints import Checkpoint
from hub.domain.ids import FieldName, PartnerId, Purpose
from hub.domain.moments import format_timestamp
from hub.ports import AuditQuery, ClientRecord, StoredAnswer

_STREAM_BATCH = 5000
Row = tuple[Any, ...]


class Sql:
    """One DBAPI connection, and the dialect its statements must be written in."""

    def __init__(self, connection: Any, dialect: str) -> None:
        self.connection = connection
        self.postgres = dialect == "postgresql"

    def run(self, statement: str, params: dict[str, Any] | None = None) -> Any:
        cursor = self.connection.cursor()
        cursor.execute(_for(statement, self.postgres), params or {})
        return cursor

    def rows(self, statement: str, params: dict[str, Any] | None = None) -> list[Row]:
        rows: list[Row] = self.run(statement, params).fetchall()
        return rows

    def row(self, statement: str, params: dict[str, Any] | None = None) -> Row | None:
        found: Row | None = self.run(statement, params).fetchone()
        return found


_NAMED = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


@cache
def _for(statement: str, postgres: bool) -> str:
    return _NAMED.sub(r"%(\1)s", statement) if postgres else statement


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _ts(value: datetime | None) -> str | None:
    return None if value is None else format_timestamp(value)


def _parse_ts(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


_CONSENT_COLUMNS = (
    "id, participant, recipient, purpose, fields, granted_at, valid_until, revoked_at, recorded_by"
)


class SqlConsents:
    def __init__(self, sql: Sql) -> None:
        self._sql = sql

    def add(self, consent: Consent, sealed_evidence: bytes | None) -> None:
        self._sql.run(
            f"INSERT INTO consents ({_CONSENT_COLUMNS}, evidence) VALUES (:id, :participant, "
            ":recipient, :purpose, :fields, :granted_at, :valid_until, :revoked_at, "
            ":recorded_by, :evidence)",
            {
                "id": consent.id,
                "participant": consent.participant,
                "recipient": consent.recipient,
                "purpose": consent.purpose,
                "fields": _dumps(sorted(consent.fields)),
                "granted_at": _ts(consent.granted_at),
                "valid_until": _ts(consent.valid_until),
                "revoked_at": _ts(consent.revoked_at),
                "recorded_by": consent.recorded_by or consent.recipient,
                "evidence": sealed_evidence,
            },
        )

    def get(self, consent_id: str) -> Consent | None:
        row = self._sql.row(
            f"SELECT {_CONSENT_COLUMNS} FROM consents WHERE id = :id", {"id": consent_id}
        )
        return None if row is None else _consent(row)

    def of_participant(
        self, participant: str, *, recipient: PartnerId, purpose: Purpose, for_share: bool = False
    ) -> Sequence[Consent]:
        statement = (
            f"SELECT {_CONSENT_COLUMNS} FROM consents WHERE participant = :participant "
            "AND recipient = :recipient AND purpose = :purpose"
        )
        if for_share and self._sql.postgres:
            statement += " FOR SHARE"
        params = {"participant": participant, "recipient": recipient, "purpose": purpose}
        return [_consent(row) for row in self._sql.rows(statement, params)]

    def by_ids(self, ids: Sequence[str], *, for_share: bool = False) -> Sequence[Consent]:
        if not ids:
            return []
        names = [f"id{i}" for i in range(len(ids))]
        statement = f"SELECT {_CONSENT_COLUMNS} FROM consents WHERE id IN ("
        statement += ", ".join(f":{name}" for name in names) + ")"
        if for_share and self._sql.postgres:
            statement += " FOR SHARE"
        return [
            _consent(row) for row in self._sql.rows(statement, dict(zip(names, ids, strict=True)))
        ]

    def page(
        self, participant: str, *, recipient: PartnerId | None, after: str | None, limit: int
    ) -> Sequence[Consent]:
        statement = f"SELECT {_CONSENT_COLUMNS} FROM consents WHERE participant = :participant"
        params: dict[str, Any] = {"participant": participant, "limit": limit}
        if recipient is not None:
            statement += " AND recipient = :recipient"
            params["recipient"] = recipient
        if after is not None:
            statement += " AND id > :after"
            params["after"] = after
        statement += " ORDER BY id LIMIT :limit"
        return [_consent(row) for row in self._sql.rows(statement, params)]

    def revoke(self, consent_id: str, at: datetime) -> None:
        self._sql.run(
            "UPDATE consents SET revoked_at = :at WHERE id = :id AND revoked_at IS NULL",
            {"id": consent_id, "at": _ts(at)},
        )


def _consent(row: Row) -> Consent:
    (id_, participant, recipient, purpose, fields, granted, until, revoked, recorded_by) = row
    return Consent(
        id=id_,
        participant=participant,
        recipient=PartnerId(recipient),
        purpose=Purpose(purpose),
        fields=frozenset(FieldName(f) for f in json.loads(fields)),
        granted_at=datetime.fromisoformat(granted),
        valid_until=_parse_ts(until),
        revoked_at=_parse_ts(revoked),
        recorded_by=PartnerId(recorded_by),
    )


# The verifier's fast path reads rows in exactly this order (ChainVerifier.feed_stored).
_AUDIT_COLUMNS = STORED_MEMBERS
_AUDIT_SELECT = f"SELECT {', '.join(_AUDIT_COLUMNS)} FROM audit_events"
_AUDIT_INSERT = (
    f"INSERT INTO audit_events ({', '.join(_AUDIT_COLUMNS)}, tag) "
    f"VALUES ({', '.join(':' + c for c in _AUDIT_COLUMNS)}, :tag)"
)


class SqlAudit:
    def __init__(self, sql: Sql) -> None:
        self._sql = sql

    def append(self, entry: AuditEntry, *, tag: Callable[[str], str] | None = None) -> AuditRecord:
        # Taking the head row with an UPDATE first makes the database serialise
        # appenders (a row lock on PostgreSQL, the write lock on SQLite) before
        # anyone reads the previous hash.
        head = self._sql.row("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
        if head is None:
            raise LookupError("the audit head row is missing: run `ketenhub db upgrade`")
        record = link(int(head[0]), entry, str(head[1]))
        row = _audit_row(record)
        row["tag"] = None if tag is None else tag(record.hash)
        self._sql.run(_AUDIT_INSERT, row)
        self._sql.run("UPDATE audit_head SET hash = :hash WHERE id = 1", {"hash": record.hash})
        return record

    def get(self, seq: int) -> AuditRecord | None:
        row = self._sql.row(f"{_AUDIT_SELECT} WHERE seq = :seq", {"seq": seq})
        return None if row is None else _record(row)

    def head(self) -> tuple[int, str]:
        row = self._sql.row("SELECT seq, hash FROM audit_head WHERE id = 1")
        return (0, GENESIS) if row is None else (int(row[0]), str(row[1]))

    def hash_at(self, seq: int) -> str | None:
        row = self._sql.row("SELECT hash FROM audit_events WHERE seq = :seq", {"seq": seq})
        return None if row is None else str(row[0])

    def tags_after(self, seq: int) -> Sequence[tuple[int, str, str | None]]:
        return [
            (_seq(r[0]), str(r[1]), None if r[2] is None else str(r[2]))
            for r in self._sql.rows(
                "SELECT seq, hash, tag FROM audit_events WHERE seq > :seq ORDER BY seq",
                {"seq": seq},
            )
        ]

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
        return Checkpoint(_seq(row[0]), str(row[1]), str(row[2]), str(row[3]))

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
            statement = f"{_AUDIT_SELECT}{matching} ORDER BY seq DESC LIMIT :limit"
        else:
            # A period that ends before the newest record: walking the log back to it
            # (what PostgreSQL plans, counting on an even spread) reads everything after
            # it. Its seqs come from ix_audit_time instead ("+seq" is not the key's
            # order), the newest kept, and only those records are read.
            chosen = f"SELECT seq FROM audit_events{matching} ORDER BY +seq DESC LIMIT :limit"
            statement = f"{_AUDIT_SELECT} WHERE seq IN ({chosen}) ORDER BY seq DESC"
        return [_record(row) for row in self._sql.rows(statement, params)]

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
                yield _record(row)

    def verify(self) -> ChainReport:
        """The chain check of ``hub.domain.audit`` over every record as stored.

        A large log is cut into stretches of seq that this process and a helper process
        per further core check side by side; ``join_segments`` tells what they prove
        together. What the stretches cannot tell (a damaged log) is checked in one pass.
        """
        top = self._sql.row("SELECT max(seq) FROM audit_events")
        helpers = _helper_count(top[0] if top is not None else None) if sys.executable else 0
        target = _reopen_target(self._sql) if helpers else None
        if target is not None and top is not None:
            report = _verify_stretches(self._sql, target, top[0], helpers)
            if report is not None:
                return report
        verifier = ChainVerifier()
        for rows in self._batches():
            if not verifier.feed_stored(rows, _record):
                break
        return verifier.report()

    def _batches(self) -> Iterator[list[Row]]:
        # Keyset batches rather than one server-side cursor: constant memory on both
        # databases, and no long-lived cursor.
        last = 0
        while True:
            rows = self._sql.rows(
                f"{_AUDIT_SELECT} WHERE seq > :last ORDER BY seq LIMIT {_STREAM_BATCH}",
                {"last": last},
            )
            if not rows:
                return
            yield rows
            last = _seq(rows[-1][0])
            if last < 0:
                return


_STRETCH = 25_000
"""Records one process checks before it takes the next stretch of a large log."""
_PARALLEL_FROM = 200_000
"""Smaller logs are checked in one pass: a helper process takes about 0.4 s to start."""
_MAX_HELPERS = 7


def _helper_count(top: object) -> int:
    """Helper processes for a log whose greatest seq is ``top``: one per further core.

    Only when every seq is a whole number: SQLite sorts text after numbers, and a log
    with a seq of text is damaged, which the one pass reports.
    """
    if type(top) is not int or top < _PARALLEL_FROM:
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(0, min((cores or 1) - 1, _MAX_HELPERS))


def _reopen_target(sql: Sql) -> str | None:
    """How another process opens this database; None when it cannot (SQLite in memory)."""
    raw = getattr(sql.connection, "driver_connection", sql.connection)
    if sql.postgres:
        from psycopg.conninfo import make_conninfo  # noqa: PLC0415 - only with PostgreSQL

        return str(make_conninfo(raw.info.dsn, password=raw.info.password))
    for _, name, path in raw.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return str(path) if path else None
    return None


def _open_again(postgres: bool, target: str) -> Sql:
    """A read-only connection of a helper process to the database named by ``target``."""
    if postgres:
        import psycopg  # noqa: PLC0415 - only with PostgreSQL

        return Sql(psycopg.connect(target, autocommit=True), "postgresql")
    uri = Path(target).as_uri() + "?mode=ro"
    return Sql(sqlite3.connect(uri, uri=True, check_same_thread=False), "sqlite")


def _check_stretch(sql: Sql, after: int, upto: int) -> Segment:
    """Check the records with ``after < seq <= upto``, assuming the chain is whole up to them."""
    start_prev: str | None = GENESIS
    if after > 0:
        found = sql.row("SELECT hash FROM audit_events WHERE seq = :seq", {"seq": after})
        start_prev = found[0] if found is not None and isinstance(found[0], str) else None
    verifier = ChainVerifier(expected_seq=after + 1, prev=start_prev)
    cursor = sql.run(
        f"{_AUDIT_SELECT} WHERE seq > :after AND seq <= :upto ORDER BY seq",
        {"after": after, "upto": upto},
    )
    first: Row | None = None
    # Small batches: rows freed as fast as they are made never wake the cyclic GC.
    while rows := cursor.fetchmany(200):
        if first is None:
            first = rows[0]
        if not verifier.feed_stored(rows, _record):
            break
    cursor.close()
    return Segment(
        start_seq=after + 1,
        start_prev=start_prev,
        report=verifier.report(),
        end_seq=verifier.expected_seq,
        first_seq=None if first is None else _seq(first[0]),
        first_prev_hash=first[19] if first is not None and isinstance(first[19], str) else None,
    )


class _Stretches:
    """The stretches of one verification, handed out in order to whoever is free."""

    def __init__(self, top: int, count: int) -> None:
        self.bounds = [top * k // count for k in range(count + 1)]
        self.done: dict[int, Segment] = {}
        self.needed = count
        """Stretches up to the first one found faulty are all that can matter."""
        self._next = 0
        self._lock = threading.Lock()

    def take(self) -> int | None:
        with self._lock:
            if self._next >= self.needed:
                return None
            self._next += 1
            return self._next - 1

    def keep(self, index: int, segment: Segment) -> None:
        with self._lock:
            self.done[index] = segment
            if not segment.report.ok:
                self.needed = min(self.needed, index + 1)

    def check(self, sql: Sql, index: int) -> None:
        self.keep(index, _check_stretch(sql, self.bounds[index], self.bounds[index + 1]))


def _verify_stretches(sql: Sql, target: str, top: int, helpers: int) -> ChainReport | None:
    stretches = _Stretches(top, max(helpers + 1, -(-top // _STRETCH)))
    drivers = [
        threading.Thread(target=_drive_helper, args=(sql.postgres, target, stretches), daemon=True)
        for _ in range(helpers)
    ]
    for driver in drivers:
        driver.start()
    try:
        while (index := stretches.take()) is not None:
            stretches.check(sql, index)
    except BaseException:
        stretches.needed = 0  # the helpers stop at their next stretch
        raise
    finally:
        for driver in drivers:
            driver.join()
    for index in range(stretches.needed):
        if index not in stretches.done:  # a helper failed with it in hand
            stretches.check(sql, index)
    return join_segments(stretches.done[index] for index in range(stretches.needed))


_HELPER = "from hub.db.repositories import _serve_as_helper; _serve_as_helper()"


def _drive_helper(postgres: bool, target: str, stretches: _Stretches) -> None:
    """Feed one helper process stretches until none is left; stop it on any trouble."""
    try:
        helper = subprocess.Popen(  # noqa: S603 - this interpreter, a fixed command
            [sys.executable, "-c", _HELPER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
    except OSError:
        return
    if helper.stdin is None or helper.stdout is None:  # Popen made them: for the type checker
        return
    try:
        # The target may hold a password: a pipe, never the command line.
        helper.stdin.write(json.dumps({"postgres": postgres, "target": target}) + "\n")
        while (index := stretches.take()) is not None:
            bounds = [stretches.bounds[index], stretches.bounds[index + 1]]
            helper.stdin.write(json.dumps(bounds) + "\n")
            helper.stdin.flush()
            answer = helper.stdout.readline()
            if not answer:
                return  # it failed: the stretch is checked here after all
            stretches.keep(index, _segment_from(json.loads(answer)))
    except (OSError, ValueError, TypeError, KeyError):
        return
    finally:
        helper.kill()  # done, or in trouble: its answers are no longer read
        helper.wait()
        with contextlib.suppress(OSError):
            helper.stdin.close()
        helper.stdout.close()


def _serve_as_helper() -> None:
    """A helper process of ``SqlAudit.verify``: checks the stretches it is sent on stdin."""
    gc.disable()  # its own process, making no cycles: the collector would only cost time
    opening = json.loads(sys.stdin.readline())
    sql = _open_again(bool(opening["postgres"]), str(opening["target"]))
    try:
        for line in sys.stdin:
            after, upto = json.loads(line)
            sys.stdout.write(json.dumps(asdict(_check_stretch(sql, after, upto))) + "\n")
            sys.stdout.flush()
    finally:
        sql.connection.close()


def _segment_from(document: dict[str, Any]) -> Segment:
    return Segment(**{**document, "report": ChainReport(**document["report"])})


def _audit_row(record: AuditRecord) -> dict[str, Any]:
    e = record.entry
    return {
        "seq": record.seq,
        "at": e.at,
        "kind": e.kind,
        "requester": e.requester,
        "source": e.source,
        "participant": e.participant,
        "purpose": e.purpose,
        "actor_role": e.actor["role"],
        "actor_id": e.actor["id"],
        "decision": str(e.decision),
        "reason": e.reason,
        "fields_requested": _dumps(list(e.fields_requested)),
        "fields_disclosed": _dumps(list(e.fields_disclosed)),
        "withheld": _dumps([dict(w) for w in e.withheld]),
        "agreement": e.agreement,
        "agreements": _dumps(list(e.agreements)),
        "consents": _dumps(list(e.consents)),
        "disclosure_id": e.disclosure_id,
        "replay_of": e.replay_of,
        "prev_hash": record.prev_hash,
        "hash": record.hash,
    }


def _json_column(value: object) -> Any:
    """A JSON column as stored; text that is not JSON (a tampered row) stays text.

    The record then fails its hash check instead of crashing the verifier.
    """
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _seq(value: object) -> int:
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except ValueError:
        return -1  # a tampered seq: reported where the chain expected another


def _record(row: Row) -> AuditRecord:
    (
        seq,
        at,
        kind,
        requester,
        source,
        participant,
        purpose,
        actor_role,
        actor_id,
        decision,
        reason,
        fields_requested,
        fields_disclosed,
        withheld,
        agreement,
        agreements,
        consents,
        disclosure_id,
        replay_of,
        prev_hash,
        hash_,
    ) = row
    entry = AuditEntry(
        at=at,
        kind=kind,
        requester=requester,
        source=source,
        participant=participant,
        purpose=purpose,
        actor={"role": actor_role, "id": actor_id},
        decision=decision,
        reason=reason,
        fields_requested=_json_column(fields_requested),
        fields_disclosed=_json_column(fields_disclosed),
        withheld=_json_column(withheld),
        agreement=agreement,
        agreements=_json_column(agreements),
        consents=_json_column(consents),
        disclosure_id=disclosure_id,
        replay_of=replay_of,
    )
    return AuditRecord(_seq(seq), entry, prev_hash, hash_)


_IDEMPOTENCY_COLUMNS = (
    "partner",
    "key",
    "fingerprint",
    "status",
    "body",
    "consent_ids",
    "audit_seq",
    "created_at",
    "expires_at",
)


class SqlIdempotency:
    def __init__(self, sql: Sql) -> None:
        self._sql = sql

    def get(self, partner: PartnerId, key: str) -> StoredAnswer | None:
        row = self._sql.row(
            f"SELECT {', '.join(_IDEMPOTENCY_COLUMNS)} FROM idempotency "
            "WHERE partner = :partner AND key = :key",
            {"partner": partner, "key": key},
        )
        if row is None:
            return None
        partner_, key_, fingerprint, status, body, consent_ids, seq, created, expires = row
        return StoredAnswer(
            partner=PartnerId(partner_),
            key=key_,
            fingerprint=fingerprint,
            status=int(status),
            sealed_body=bytes(body),
            consent_ids=tuple(json.loads(consent_ids)),
            audit_seq=int(seq),
            created_at=datetime.fromisoformat(created),
            expires_at=datetime.fromisoformat(expires),
        )

    def put(self, answer: StoredAnswer) -> None:
        values = {
            "partner": answer.partner,
            "key": answer.key,
            "fingerprint": answer.fingerprint,
            "status": answer.status,
            "body": answer.sealed_body,
            "consent_ids": _dumps(list(answer.consent_ids)),
            "audit_seq": answer.audit_seq,
            "created_at": _ts(answer.created_at),
            "expires_at": _ts(answer.expires_at),
        }
        # Answers are kept 24 hours (CONTRACT.md 3), not a moment longer.
        self._sql.run(
            "DELETE FROM idempotency WHERE expires_at < :now", {"now": values["created_at"]}
        )
        updates = ", ".join(f"{c} = excluded.{c}" for c in _IDEMPOTENCY_COLUMNS[2:])
        self._sql.run(
            f"INSERT INTO idempotency ({', '.join(_IDEMPOTENCY_COLUMNS)}) "
            f"VALUES ({', '.join(':' + c for c in _IDEMPOTENCY_COLUMNS)}) "
            f"ON CONFLICT (partner, key) DO UPDATE SET {updates}",
            values,
        )


_CLIENT_COLUMNS = "client_id, partner, scopes, auth_method, secret_hash, jwks, created_at"


class SqlClients:
    def __init__(self, sql: Sql) -> None:
        self._sql = sql

    def add(self, client: ClientRecord) -> None:
        self._sql.run(
            f"INSERT INTO clients ({_CLIENT_COLUMNS}) VALUES (:client_id, :partner, :scopes, "
            ":auth_method, :secret_hash, :jwks, :created_at)",
            {
                "client_id": client.client_id,
                "partner": client.partner,
                "scopes": " ".join(sorted(client.scopes)),
                "auth_method": client.auth_method,
                "secret_hash": client.secret_hash,
                "jwks": None if client.jwks is None else _dumps(client.jwks),
                "created_at": _ts(client.created_at),
            },
        )

    def get(self, client_id: str) -> ClientRecord | None:
        row = self._sql.row(
            f"SELECT {_CLIENT_COLUMNS} FROM clients WHERE client_id = :id", {"id": client_id}
        )
        if row is None:
            return None
        client_id_, partner, scopes, auth_method, secret_hash, jwks, created = row
        return ClientRecord(
            client_id=client_id_,
            partner=PartnerId(partner),
            scopes=frozenset(scopes.split()),
            auth_method=auth_method,
            secret_hash=secret_hash,
            jwks=None if jwks is None else json.loads(jwks),
            created_at=datetime.fromisoformat(created),
        )


class SqlAssertionReplay:
    def __init__(self, sql: Sql) -> None:
        self._sql = sql

    def remember(self, client_id: str, jti: str, expires_at: datetime, now: datetime) -> bool:
        # Forget what can no longer be replayed: an expired assertion is refused anyway.
        self._sql.run("DELETE FROM assertion_jtis WHERE expires_at < :now", {"now": _ts(now)})
        cursor = self._sql.run(
            "INSERT INTO assertion_jtis (client_id, jti, expires_at) "
            "VALUES (:client_id, :jti, :expires_at) ON CONFLICT (client_id, jti) DO NOTHING",
            {"client_id": client_id, "jti": jti, "expires_at": _ts(expires_at)},
        )
        return bool(cursor.rowcount == 1)
