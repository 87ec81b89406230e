"""Schema migrations with Alembic: the only way the schema changes."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import make_url

from hub.db.database import ensure_sqlite_dir, sync_url

_SCRIPTS = Path(__file__).parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    ensure_sqlite_dir(url)
    engine = create_sync_engine(sync_url(url))
    try:
        with engine.begin() as connection:
            config = _config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()


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
    """True when the database is at the newest revision (the hub refuses to serve otherwise)."""
    engine = create_sync_engine(sync_url(url))
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
    return current == ScriptDirectory.from_config(_config()).get_current_head()
