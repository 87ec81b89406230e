"""The audit log's time index covers what a privacy officer asks of a period.

``ix_audit_at (at)`` found a day's records but then read every one of them from the
table: to sort them by ``seq`` for the newest page, and to count them per requester
and decision. ``ix_audit_time`` holds those members itself, so both are answered from
the index alone (an index-only scan on PostgreSQL, a covering index on SQLite).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_audit_time", "audit_events", ["at", "requester", "decision", "source", "seq"]
    )
    op.drop_index("ix_audit_at", table_name="audit_events")


def downgrade() -> None:
    op.create_index("ix_audit_at", "audit_events", ["at"])
    op.drop_index("ix_audit_time", table_name="audit_events")
