"""The legacy prefix: the records written before record tags existed (0003).

A release before 0003 wrote records without a ``tag``, and signed no checkpoint over
them; the verifier (``hub.domain.checkpoints.hold_tags``) would call the first of them
not the hub's until the hub signs one. This revision records, once, how far that
untagged prefix reaches: ``audit_legacy.untagged_through`` is the highest seq such that
records 1 to it all have no tag (0 when the log is empty or its first record is tagged).

Only a prefix counts: an untagged record after a tagged one is not legacy, whatever
this row says, and the row is ignored once any checkpoint the hub signed holds (every
honest checkpoint lies at or above the legacy prefix). The hub signs a checkpoint over
the prefix when a verification has passed (``AuditService.verify``), or over its head
when it stops, so that the window in which the row matters closes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_legacy",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("untagged_through", sa.BigInteger, nullable=False),
    )
    # The untagged prefix ends just before the first tagged record; with none tagged,
    # it is the whole log (and 0 for an empty one).
    op.execute(
        "INSERT INTO audit_legacy (id, untagged_through) SELECT 1, COALESCE("
        "(SELECT min(seq) FROM audit_events WHERE tag IS NOT NULL) - 1, "
        "(SELECT max(seq) FROM audit_events), 0)"
    )


def downgrade() -> None:
    op.drop_table("audit_legacy")
