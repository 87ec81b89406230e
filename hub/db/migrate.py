"""Schema migrations with Alembic: the only way the schema changes."""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, event, text
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from hub.db.database import ensure_sqlite_dir, sync_url

if TYPE_CHECKING:
    from alembic.config import Config

_SCRIPTS = Path(__file__).parent / "migrations"
_PG_MIGRATION_LOCK = 0x6B6574656E687562  # "ketenhub"; advisory locks are per database
_WAL_ATTEMPTS = 300
"""A tenth of a second apart: the journal mode changes only when no one else has a lock."""


def _config() -> Config:
    from alembic.config import Config  # noqa: PLC0415 - alembic only where the schema changes

    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    ensure_sqlite_dir(url)
    engine = create_sync_engine(sync_url(url))
    if engine.dialect.name == "sqlite":
        _serialise_sqlite(engine)
    from alembic import command  # noqa: PLC0415

    try:
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                # Processes that start on a new database at once (``serve --workers`` on
                # several hosts, ``client create`` beside ``serve``) would otherwise each
                # find no schema and each create it: one fails on ``alembic_version``.
                # The lock is the transaction's, and the migration is one transaction.
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
            config = _config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def _serialise_sqlite(engine: Engine) -> None:
    """Migrate under SQLite's write lock, taken first: two processes that start on a new
    database at once (``serve`` beside ``client create``) would otherwise both find no
    schema and both create it, and the second fails with ``table ... already exists``.
    The second now waits, then finds the schema current.

    The file is put in WAL mode here too, before any hub connection opens it: a
    connection that cannot switch (another process holds a lock) stays in rollback
    mode without an error, and its writes then fail with ``database is locked``."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # transactions are begun below, not by pysqlite
        dbapi_connection.execute("PRAGMA busy_timeout=30000")
        for _ in range(_WAL_ATTEMPTS):
            try:  # SQLITE_BUSY at once, or the old mode back: busy_timeout does not apply
                mode = dbapi_connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            except sqlite3.OperationalError:
                mode = None
            if str(mode).lower() in {"wal", "memory"}:
                break
            time.sleep(0.1)

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def describe(url: str) -> str:
    """The URL without its password, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def exists(url: str) -> bool:
    """False for an SQLite file that is not there (which connecting would create)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in {None, "", ":memory:"}:
        return True
    return Path(str(parsed.database)).is_file()


def is_current(url: str) -> bool:
    """True when the database is at the newest revision (the hub refuses to serve otherwise).

    Read without Alembic (Alembic's own table, the revision files' own lines), so that
    ``ketenhub audit verify`` starts quickly; a test holds it to Alembic's answer.
    """
    engine = create_sync_engine(sync_url(url))
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    except SQLAlchemyError:
        return False  # no Alembic table: not a Ketenhub database, or an empty one
    finally:
        engine.dispose()
    return [row[0] for row in rows] == [head_revision()]


_REVISION = re.compile(r'^(down_revision|revision) = "?([\w]+)"?$', re.MULTILINE)


def head_revision() -> str:
    """The one revision no other revision builds on: what ``upgrade`` leads to."""
    revisions: set[str] = set()
    below: set[str] = set()
    for path in (_SCRIPTS / "versions").glob("*.py"):
        for name, value in _REVISION.findall(path.read_text()):
            (revisions if name == "revision" else below).add(value)
    (head,) = revisions - below
    return head
