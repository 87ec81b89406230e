"""Repositories over one connection: they run inside the caller's transaction.

Blocking SQLAlchemy Core: ``SqlDatabase`` runs a whole transaction in a worker thread.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, Table, and_, delete, insert, or_, select, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from consent.model import Consent
from hub.db import tables as t
from hub.domain.audit import AuditEntry, AuditRecord, link
from hub.domain.ids import FieldName, PartnerId, Purpose
from hub.domain.moments import format_timestamp
from hub.ports import AuditQuery, ClientRecord, StoredAnswer

_STREAM_BATCH = 5000


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _ts(value: datetime | None) -> str | None:
    return None if value is None else format_timestamp(value)


def _parse_ts(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _moment(value: str) -> datetime:
    """A NOT NULL timestamp column."""
    return datetime.fromisoformat(value)


def _insert(conn: Connection, table: Table) -> Any:
    """An INSERT that can be told what to do on conflict, in the connection's dialect."""
    if conn.dialect.name == "postgresql":
        return pg_insert(table)
    return sqlite_insert(table)


class SqlConsents:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, consent: Consent, sealed_evidence: bytes | None) -> None:
        self._conn.execute(
            insert(t.consents).values(
                id=consent.id,
                participant=consent.participant,
                recipient=consent.recipient,
                purpose=consent.purpose,
                fields=_dumps(sorted(consent.fields)),
                granted_at=_ts(consent.granted_at),
                valid_until=_ts(consent.valid_until),
                revoked_at=_ts(consent.revoked_at),
                recorded_by=consent.recorded_by or consent.recipient,
                evidence=sealed_evidence,
            )
        )

    def get(self, consent_id: str) -> Consent | None:
        row = (self._conn.execute(select(t.consents).where(t.consents.c.id == consent_id))).first()
        return None if row is None else _consent(row)

    def of_participant(
        self, participant: str, *, recipient: PartnerId, purpose: Purpose, for_share: bool = False
    ) -> Sequence[Consent]:
        query = select(t.consents).where(
            t.consents.c.participant == participant,
            t.consents.c.recipient == recipient,
            t.consents.c.purpose == purpose,
        )
        if for_share and self._conn.dialect.name == "postgresql":
            query = query.with_for_update(read=True)
        return [_consent(row) for row in self._conn.execute(query)]

    def by_ids(self, ids: Sequence[str], *, for_share: bool = False) -> Sequence[Consent]:
        if not ids:
            return []
        query = select(t.consents).where(t.consents.c.id.in_(list(ids)))
        if for_share and self._conn.dialect.name == "postgresql":
            query = query.with_for_update(read=True)
        return [_consent(row) for row in self._conn.execute(query)]

    def page(
        self, participant: str, *, recipient: PartnerId | None, after: str | None, limit: int
    ) -> Sequence[Consent]:
        query = select(t.consents).where(t.consents.c.participant == participant)
        if recipient is not None:
            query = query.where(t.consents.c.recipient == recipient)
        if after is not None:
            query = query.where(t.consents.c.id > after)
        query = query.order_by(t.consents.c.id).limit(limit)
        return [_consent(row) for row in self._conn.execute(query)]

    def revoke(self, consent_id: str, at: datetime) -> None:
        self._conn.execute(
            update(t.consents)
            .where(t.consents.c.id == consent_id, t.consents.c.revoked_at.is_(None))
            .values(revoked_at=_ts(at))
        )


def _consent(row: Row[Any]) -> Consent:
    m = row._mapping
    return Consent(
        id=m["id"],
        participant=m["participant"],
        recipient=PartnerId(m["recipient"]),
        purpose=Purpose(m["purpose"]),
        fields=frozenset(FieldName(f) for f in json.loads(m["fields"])),
        granted_at=_moment(m["granted_at"]),
        valid_until=_parse_ts(m["valid_until"]),
        revoked_at=_parse_ts(m["revoked_at"]),
        recorded_by=PartnerId(m["recorded_by"]),
    )


class SqlAudit:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def append(self, entry: AuditEntry) -> AuditRecord:
        # Taking the head row with an UPDATE first makes the database serialise
        # appenders (a row lock on PostgreSQL, the write lock on SQLite) before
        # anyone reads the previous hash.
        head = (
            self._conn.execute(
                update(t.audit_head)
                .where(t.audit_head.c.id == 1)
                .values(seq=t.audit_head.c.seq + 1)
                .returning(t.audit_head.c.seq, t.audit_head.c.hash)
            )
        ).one()
        record = link(int(head.seq), entry, str(head.hash))
        self._conn.execute(insert(t.audit_events).values(**_audit_row(record)))
        self._conn.execute(
            update(t.audit_head).where(t.audit_head.c.id == 1).values(hash=record.hash)
        )
        return record

    def get(self, seq: int) -> AuditRecord | None:
        row = (
            self._conn.execute(select(t.audit_events).where(t.audit_events.c.seq == seq))
        ).first()
        return None if row is None else _record(row)

    def page(self, query: AuditQuery, limit: int) -> Sequence[AuditRecord]:
        c = t.audit_events.c
        conditions = []
        if query.participant is not None:
            conditions.append(c.participant == query.participant)
        if query.partner is not None:
            conditions.append(or_(c.requester == query.partner, c.source == query.partner))
        if query.visible_to is not None:
            conditions.append(or_(c.requester == query.visible_to, c.source == query.visible_to))
        if query.purpose is not None:
            conditions.append(c.purpose == query.purpose)
        if query.decision is not None:
            conditions.append(c.decision == str(query.decision))
        if query.since is not None:
            conditions.append(c.at >= query.since)
        if query.until is not None:
            conditions.append(c.at < query.until)
        if query.before_seq is not None:
            conditions.append(c.seq < query.before_seq)
        statement = select(t.audit_events).where(and_(true(), *conditions))
        statement = statement.order_by(c.seq.desc()).limit(limit)
        return [_record(row) for row in self._conn.execute(statement)]

    def stream(self) -> Iterator[AuditRecord]:
        # Keyset batches rather than one server-side cursor: constant memory on both
        # databases, and no long-lived cursor on SQLite.
        last = 0
        while True:
            rows = (
                self._conn.execute(
                    select(t.audit_events)
                    .where(t.audit_events.c.seq > last)
                    .order_by(t.audit_events.c.seq)
                    .limit(_STREAM_BATCH)
                )
            ).all()
            if not rows:
                return
            for row in rows:
                yield _record(row)
            last = _seq(rows[-1].seq)
            if last < 0:
                return


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


def _record(row: Row[Any]) -> AuditRecord:
    m = row._mapping
    entry = AuditEntry(
        at=m["at"],
        kind=m["kind"],
        requester=m["requester"],
        source=m["source"],
        participant=m["participant"],
        purpose=m["purpose"],
        actor={"role": m["actor_role"], "id": m["actor_id"]},
        decision=m["decision"],
        reason=m["reason"],
        fields_requested=_json_column(m["fields_requested"]),
        fields_disclosed=_json_column(m["fields_disclosed"]),
        withheld=_json_column(m["withheld"]),
        agreement=m["agreement"],
        agreements=_json_column(m["agreements"]),
        consents=_json_column(m["consents"]),
        disclosure_id=m["disclosure_id"],
        replay_of=m["replay_of"],
    )
    return AuditRecord(_seq(m["seq"]), entry, m["prev_hash"], m["hash"])


class SqlIdempotency:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get(self, partner: PartnerId, key: str) -> StoredAnswer | None:
        c = t.idempotency.c
        row = (
            self._conn.execute(select(t.idempotency).where(c.partner == partner, c.key == key))
        ).first()
        if row is None:
            return None
        m = row._mapping
        return StoredAnswer(
            partner=PartnerId(m["partner"]),
            key=m["key"],
            fingerprint=m["fingerprint"],
            status=int(m["status"]),
            sealed_body=bytes(m["body"]),
            consent_ids=tuple(json.loads(m["consent_ids"])),
            audit_seq=int(m["audit_seq"]),
            created_at=_moment(m["created_at"]),
            expires_at=_moment(m["expires_at"]),
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
        self._conn.execute(
            delete(t.idempotency).where(t.idempotency.c.expires_at < _ts(answer.created_at))
        )
        statement = _insert(self._conn, t.idempotency).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=["partner", "key"],
            set_={k: v for k, v in values.items() if k not in {"partner", "key"}},
        )
        self._conn.execute(statement)


class SqlClients:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, client: ClientRecord) -> None:
        self._conn.execute(
            insert(t.clients).values(
                client_id=client.client_id,
                partner=client.partner,
                scopes=" ".join(sorted(client.scopes)),
                auth_method=client.auth_method,
                secret_hash=client.secret_hash,
                jwks=None if client.jwks is None else _dumps(client.jwks),
                created_at=_ts(client.created_at),
            )
        )

    def get(self, client_id: str) -> ClientRecord | None:
        row = (
            self._conn.execute(select(t.clients).where(t.clients.c.client_id == client_id))
        ).first()
        if row is None:
            return None
        m = row._mapping
        return ClientRecord(
            client_id=m["client_id"],
            partner=PartnerId(m["partner"]),
            scopes=frozenset(m["scopes"].split()),
            auth_method=m["auth_method"],
            secret_hash=m["secret_hash"],
            jwks=None if m["jwks"] is None else json.loads(m["jwks"]),
            created_at=_moment(m["created_at"]),
        )


class SqlAssertionReplay:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def remember(self, client_id: str, jti: str, expires_at: datetime, now: datetime) -> bool:
        c = t.assertion_jtis.c
        # Forget what can no longer be replayed: an expired assertion is refused anyway.
        self._conn.execute(delete(t.assertion_jtis).where(c.expires_at < _ts(now)))
        statement = (
            _insert(self._conn, t.assertion_jtis)
            .values(client_id=client_id, jti=jti, expires_at=_ts(expires_at))
            .on_conflict_do_nothing(index_elements=["client_id", "jti"])
        )
        result = self._conn.execute(statement)
        return bool(result.rowcount == 1)
