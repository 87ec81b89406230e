"""Per-participant data keys (crypto-shredding) and the record of each erasure.

- ``participant_keys``: one data key (DEK) per participant pseudonym, stored only
  wrapped under a master key of the key directory (``hub.auth.datakeys``).
- ``consents.evidence_key`` and ``idempotency.data_key`` name the DEK a row is sealed
  under. Rows sealed before this revision keep NULL there: they were sealed with the
  hub's one ``seal.key`` and stay readable with it. Such evidence has no DEK to
  destroy, so erasing its participant deletes it; kept answers expire within 24 hours.
- ``idempotency.participant``: whom a kept answer is about, so that erasing a
  participant deletes their answers; filled here for the rows already kept, from the
  audit record each answer names (the audit log holds the same pseudonym).
- ``erasures``: when, by whom, and what each erasure destroyed (pseudonyms only).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.String(27)
HEX64 = sa.String(64)


def upgrade() -> None:
    op.create_table(
        "participant_keys",
        sa.Column("participant", HEX64, primary_key=True),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("master_id", sa.String(32), nullable=False),
        sa.Column("wrapped", sa.LargeBinary, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_participant_keys_master", "participant_keys", ["master_id", "participant"])
    op.create_table(
        "erasures",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("participant", HEX64, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("erased_by", sa.String(200), nullable=False),
        sa.Column("key_destroyed", sa.Integer, nullable=False),
        sa.Column("consents_revoked", sa.Integer, nullable=False),
        sa.Column("answers_deleted", sa.Integer, nullable=False),
        sa.Column("evidence_dropped", sa.Integer, nullable=False),
    )
    op.create_index("ix_erasures_participant", "erasures", ["participant", "at"])
    op.add_column("consents", sa.Column("evidence_key", sa.String(32), nullable=True))
    op.add_column("idempotency", sa.Column("participant", HEX64, nullable=True))
    op.add_column("idempotency", sa.Column("data_key", sa.String(32), nullable=True))
    op.execute(
        "UPDATE idempotency SET participant = (SELECT audit_events.participant "
        "FROM audit_events WHERE audit_events.seq = idempotency.audit_seq)"
    )
    op.create_index("ix_idempotency_participant", "idempotency", ["participant"])


def downgrade() -> None:
    op.drop_index("ix_idempotency_participant", table_name="idempotency")
    with op.batch_alter_table("idempotency") as batch:
        batch.drop_column("data_key")
        batch.drop_column("participant")
    with op.batch_alter_table("consents") as batch:
        batch.drop_column("evidence_key")
    op.drop_index("ix_erasures_participant", table_name="erasures")
    op.drop_table("erasures")
    op.drop_index("ix_participant_keys_master", table_name="participant_keys")
    op.drop_table("participant_keys")
