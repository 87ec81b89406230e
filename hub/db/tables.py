"""The schema, as SQLAlchemy Core tables. Alembic migrations are the only way it changes.

Times are stored as fixed-width UTC text (``hub.domain.audit.TIMESTAMP_FORMAT``): they
sort as text, compare the same on SQLite and PostgreSQL, and round-trip exactly,
which the audit hash needs.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

TS = String(27)
SLUG = String(40)
HEX64 = String(64)

clients = Table(
    "clients",
    metadata,
    Column("client_id", String(80), primary_key=True),
    Column("partner", SLUG, nullable=False),
    Column("scopes", Text, nullable=False),
    Column("auth_method", String(20), nullable=False),
    Column("secret_hash", String(80)),
    Column("jwks", Text),
    Column("created_at", TS, nullable=False),
)

consents = Table(
    "consents",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("participant", HEX64, nullable=False),
    Column("recipient", SLUG, nullable=False),
    Column("purpose", SLUG, nullable=False),
    Column("fields", Text, nullable=False),
    Column("granted_at", TS, nullable=False),
    Column("valid_until", TS),
    Column("revoked_at", TS),
    Column("recorded_by", SLUG, nullable=False),
    Column("evidence", LargeBinary),
    # The participant DEK the evidence is sealed under; NULL: the one seal key (0004).
    Column("evidence_key", String(32)),
    Index("ix_consents_match", "participant", "recipient", "purpose"),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", TS, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("requester", SLUG, nullable=False),
    Column("source", SLUG, nullable=False),
    Column("participant", HEX64, nullable=False),
    Column("purpose", String(80), nullable=False),
    Column("actor_role", String(80), nullable=False),
    Column("actor_id", String(200), nullable=False),
    Column("decision", String(16), nullable=False),
    Column("reason", String(40)),
    Column("fields_requested", Text, nullable=False),
    Column("fields_disclosed", Text, nullable=False),
    Column("withheld", Text, nullable=False),
    Column("agreement", String(60)),
    Column("agreements", Text, nullable=False),
    Column("consents", Text, nullable=False),
    Column("disclosure_id", String(36)),
    Column("replay_of", BigInteger),
    Column("prev_hash", HEX64, nullable=False),
    Column("hash", HEX64, nullable=False),
    # HMAC of hash under a hub key: proves records after the newest checkpoint are the
    # hub's own (migration 0003; hub.domain.checkpoints).
    Column("tag", HEX64),
    Index("ix_audit_participant", "participant", "seq"),
    Index("ix_audit_requester", "requester", "seq"),
    Index("ix_audit_source", "source", "seq"),
    # Covers a period's newest page (at, then seq) and its counts per requester and
    # decision (migration 0002): neither reads the table for every record of the period.
    Index("ix_audit_time", "at", "requester", "decision", "source", "seq"),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", HEX64, nullable=False),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    # seq and hash of the record signed for, when, and the JWS (hub.domain.checkpoints)
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("head", HEX64, nullable=False),
    Column("at", TS, nullable=False),
    Column("jws", Text, nullable=False),
)

audit_legacy = Table(
    "audit_legacy",
    metadata,
    # One row: records 1 to untagged_through were written before tags existed (0005);
    # the verifier excuses their missing tag until a checkpoint holds (hub.domain.checkpoints).
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("untagged_through", BigInteger, nullable=False),
)

idempotency = Table(
    "idempotency",
    metadata,
    Column("partner", SLUG, primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("fingerprint", HEX64, nullable=False),
    Column("status", Integer, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("consent_ids", Text, nullable=False),
    Column("audit_seq", BigInteger, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
    # Whom the answer is about, and the DEK its body is sealed under (0004).
    Column("participant", HEX64),
    Column("data_key", String(32)),
    Index("ix_idempotency_expires", "expires_at"),
    Index("ix_idempotency_participant", "participant"),
)

participant_keys = Table(
    "participant_keys",
    metadata,
    # One data key per participant pseudonym, wrapped by a master key (hub.auth.datakeys).
    Column("participant", HEX64, primary_key=True),
    Column("key_id", String(32), nullable=False),
    Column("master_id", String(32), nullable=False),
    Column("wrapped", LargeBinary, nullable=False),
    Column("created_at", TS, nullable=False),
    Index("ix_participant_keys_master", "master_id", "participant"),
)

erasures = Table(
    "erasures",
    metadata,
    # Proof of each crypto-shredding: a pseudonym, never the INSZ (CONTRACT.md 4).
    Column("id", String(36), primary_key=True),
    Column("participant", HEX64, nullable=False),
    Column("at", TS, nullable=False),
    Column("erased_by", String(200), nullable=False),
    Column("key_destroyed", Integer, nullable=False),
    Column("consents_revoked", Integer, nullable=False),
    Column("answers_deleted", Integer, nullable=False),
    Column("evidence_dropped", Integer, nullable=False),
    Index("ix_erasures_participant", "participant", "at"),
)

assertion_jtis = Table(
    "assertion_jtis",
    metadata,
    Column("client_id", String(80), primary_key=True),
    Column("jti", String(200), primary_key=True),
    Column("expires_at", TS, nullable=False),
)
