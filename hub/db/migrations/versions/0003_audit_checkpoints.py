"""Signed checkpoints and record tags: records cut off the log's end, or added to it
by anyone but the hub, are detected.

One row per checkpoint: the seq and hash of the record it was signed for, when, and
the compact JWS the hub signed. Each record gets a ``tag``, an HMAC of its hash under
a hub key (``hub.domain.checkpoints``). Records written before this revision have no
tag and no checkpoint: revision 0005 records them as the legacy prefix, whose missing
tag the verifier excuses until a checkpoint over it holds.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("audit_events", sa.Column("tag", sa.String(64), nullable=True))
    op.create_table(
        "audit_checkpoints",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("head", sa.String(64), nullable=False),
        sa.Column("at", sa.String(27), nullable=False),
        sa.Column("jws", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("audit_checkpoints")
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("tag")
