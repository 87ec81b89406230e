"""Alembic environment: runs on a blocking connection handed over by ``hub.db.migrate``."""

from __future__ import annotations

from alembic import context

from hub.db.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
