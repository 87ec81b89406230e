"""Repositories over one DBAPI connection: they run inside the caller's transaction.

The statements are written once, as SQL that SQLite and PostgreSQL both speak, with
``:named`` parameters (``Sql`` turns them into psycopg's style). They go straight to
the driver: on the exchange path a SQLAlchemy Core statement cost about ten times
the database's own work. ``hub.db.tables`` stays the schema's definition (Alembic).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from consent.model import Consent
from hub.db.audit_log import SqlAudit
from hub.db.sql import Row, Sql, json_text, parse_timestamp, timestamp
from hub.domain.ids import FieldName, PartnerId, Purpose
from hub.ports import ClientRecord, OutstandingConsents, SealedData, StoredAnswer

__all__ = ["Sql", "SqlAssertionReplay", "SqlAudit", "SqlClients", "SqlConsents", "SqlIdempotency"]


_CONSENT_COLUMNS = (
    "id, participant, recipient, purpose, fields, granted_at, valid_until, revoked_at, recorded_by"
)


class SqlConsents:
    def __init__(self, sql: Sql) -> None:
        self._sql = sql

    def add(
        self, consent: Consent, sealed_evidence: bytes | None, evidence_key: str | None = None
    ) -> None:
        self._sql.run(
            f"INSERT INTO consents ({_CONSENT_COLUMNS}, evidence, evidence_key) VALUES (:id, "
            ":participant, :recipient, :purpose, :fields, :granted_at, :valid_until, "
            ":revoked_at, :recorded_by, :evidence, :evidence_key)",
            {
                "id": consent.id,
                "participant": consent.participant,
                "recipient": consent.recipient,
                "purpose": consent.purpose,
                "fields": json_text(sorted(consent.fields)),
                "granted_at": timestamp(consent.granted_at),
                "valid_until": timestamp(consent.valid_until),
                "revoked_at": timestamp(consent.revoked_at),
                "recorded_by": consent.recorded_by or consent.recipient,
                "evidence": sealed_evidence,
                "evidence_key": evidence_key,
            },
        )

    def evidence(self, consent_id: str) -> SealedData | None:
        row = self._sql.row(
            "SELECT evidence, evidence_key FROM consents WHERE id = :id", {"id": consent_id}
        )
        if row is None or row[0] is None:
            return None
        return SealedData(bytes(row[0]), row[1])

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
            {"id": consent_id, "at": timestamp(at)},
        )

    def outstanding(
        self, *, granted_from: datetime | None, granted_before: datetime, now: datetime
    ) -> OutstandingConsents:
        # Timestamps are stored as fixed-width UTC text, so they compare as text.
        row = self._sql.row(
            "SELECT COUNT(*), SUM(CASE WHEN valid_until IS NULL THEN 1 ELSE 0 END), "
            "MAX(valid_until) FROM consents WHERE revoked_at IS NULL "
            "AND granted_at >= :since AND granted_at < :before "
            "AND (valid_until IS NULL OR valid_until > :now)",
            {
                "since": timestamp(granted_from) or "",
                "before": timestamp(granted_before),
                "now": timestamp(now),
            },
        )
        count, open_ended, latest = row if row is not None else (0, 0, None)
        return OutstandingConsents(int(count), bool(open_ended), parse_timestamp(latest))


def _consent(row: Row) -> Consent:
    """The consent a row holds; a row seen before (every member as it was then) gives
    the same immutable ``Consent`` again. An exchange reads its consents twice: this
    saves about 3 µs a row (the JSON, the timestamps, the frozenset)."""
    try:
        return _CONSENTS[row]
    except KeyError:
        pass
    except TypeError:  # a member that is not hashable (a driver's buffer): just decode
        return _decode_consent(row)
    consent = _decode_consent(row)
    if len(_CONSENTS) >= _CONSENTS_KEPT:
        _CONSENTS.clear()
    _CONSENTS[row] = consent
    return consent


_CONSENTS: dict[Row, Consent] = {}
"""Keyed by the whole row: a consent that changed (revoked) is another key, never stale."""
_CONSENTS_KEPT = 4096


def _decode_consent(row: Row) -> Consent:
    (id_, participant, recipient, purpose, fields, granted, until, revoked, recorded_by) = row
    return Consent(
        id=id_,
        participant=participant,
        recipient=PartnerId(recipient),
        purpose=Purpose(purpose),
        fields=frozenset(FieldName(f) for f in json.loads(fields)),
        granted_at=datetime.fromisoformat(granted),
        valid_until=parse_timestamp(until),
        revoked_at=parse_timestamp(revoked),
        recorded_by=PartnerId(recorded_by),
    )


# The verifier's fast path reads rows in exactly this order (ChainVerifier.feed_stored).
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
    "participant",
    "data_key",
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
        (partner_, key_, fingerprint, status, body, consent_ids, seq, created, expires) = row[:9]
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
            participant=row[9],
            data_key=row[10],
        )

    def put(self, answer: StoredAnswer) -> None:
        values = {
            "partner": answer.partner,
            "key": answer.key,
            "fingerprint": answer.fingerprint,
            "status": answer.status,
            "body": answer.sealed_body,
            "consent_ids": json_text(list(answer.consent_ids)),
            "audit_seq": answer.audit_seq,
            "created_at": timestamp(answer.created_at),
            "expires_at": timestamp(answer.expires_at),
            "participant": answer.participant,
            "data_key": answer.data_key,
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
                "jwks": None if client.jwks is None else json_text(client.jwks),
                "created_at": timestamp(client.created_at),
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
        self._sql.run("DELETE FROM assertion_jtis WHERE expires_at < :now", {"now": timestamp(now)})
        cursor = self._sql.run(
            "INSERT INTO assertion_jtis (client_id, jti, expires_at) "
            "VALUES (:client_id, :jti, :expires_at) ON CONFLICT (client_id, jti) DO NOTHING",
            {"client_id": client_id, "jti": jti, "expires_at": timestamp(expires_at)},
        )
        return bool(cursor.rowcount == 1)
