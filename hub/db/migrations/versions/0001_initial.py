"""The exchange core: clients, consents, the audit chain, idempotency keys, assertion ids.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.String(27)
SLUG = sa.String(40)
HEX64 = sa.String(64)


def upgrade() -> None:
    op.create_table(
        "clients",
        sa.Column("client_id", sa.String(80), primary_key=True),
        sa.Column("partner", SLUG, nullable=False),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("auth_method", sa.String(20), nullable=False),
        sa.Column("secret_hash", sa.String(80)),
        sa.Column("jwks", sa.Text),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "consents",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("participant", HEX64, nullable=False),
        sa.Column("recipient", SLUG, nullable=False),
        sa.Column("purpose", SLUG, nullable=False),
        sa.Column("fields", sa.Text, nullable=False),
        sa.Column("granted_at", TS, nullable=False),
        sa.Column("valid_until", TS),
        sa.Column("revoked_at", TS),
        sa.Column("recorded_by", SLUG, nullable=False),
        sa.Column("evidence", sa.LargeBinary),
    )
    op.create_index("ix_consents_match", "consents", ["participant", "recipient", "purpose"])
    op.create_table(
        "audit_events",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("requester", SLUG, nullable=False),
        sa.Column("source", SLUG, nullable=False),
        sa.Column("participant", HEX64, nullable=False),
        sa.Column("purpose", sa.String(80), nullable=False),
        sa.Column("actor_role", sa.String(80), nullable=False),
        sa.Column("actor_id", sa.String(200), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(40)),
        sa.Column("fields_requested", sa.Text, nullable=False),
        sa.Column("fields_disclosed", sa.Text, nullable=False),
        sa.Column("withheld", sa.Text, nullable=False),
        sa.Column("agreement", sa.String(60)),
        sa.Column("agreements", sa.Text, nullable=False),
        sa.Column("consents", sa.Text, nullable=False),
        sa.Column("disclosure_id", sa.String(36)),
        sa.Column("replay_of", sa.BigInteger),
        sa.Column("prev_hash", HEX64, nullable=False),
        sa.Column("hash", HEX64, nullable=False),
    )
    op.create_index("ix_audit_participant", "audit_events", ["participant", "seq"])
    op.create_index("ix_audit_requester", "audit_events", ["requester", "seq"])
    op.create_index("ix_audit_source", "audit_events", ["source", "seq"])
    op.create_index("ix_audit_at", "audit_events", ["at"])
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", HEX64, nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": "0" * 64}])
    op.create_table(
        "idempotency",
        sa.Column("partner", SLUG, primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("fingerprint", HEX64, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("consent_ids", sa.Text, nullable=False),
        sa.Column("audit_seq", sa.BigInteger, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
    )
    op.create_index("ix_idempotency_expires", "idempotency", ["expires_at"])
    op.create_table(
        "assertion_jtis",
        sa.Column("client_id", sa.String(80), primary_key=True),
        sa.Column("jti", sa.String(200), primary_key=True),
        sa.Column("expires_at", TS, nullable=False),
    )


def downgrade() -> None:
    for table in ("assertion_jtis", "idempotency", "audit_head", "audit_events", "consents", "clients"):
        op.drop_table(table)
