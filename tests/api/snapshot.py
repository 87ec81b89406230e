"""The whole database of a test hub as data, to prove that a refused request changed nothing."""

from __future__ import annotations

from sqlalchemy.engine import make_url

from tests.conftest import connect

_TABLES = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
    "postgresql": "SELECT table_name FROM information_schema.tables "
    "WHERE table_schema = 'public' ORDER BY table_name",
}


def snapshot(database_url: str) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table, in a stable order (SQLite or PostgreSQL)."""
    with connect(database_url) as raw:
        listing = _TABLES[make_url(database_url).get_backend_name()]
        tables = [name for (name,) in raw.execute(listing).fetchall()]
        return {
            table: sorted(
                (tuple(row) for row in raw.execute(f'SELECT * FROM "{table}"').fetchall()),
                key=repr,
            )
            for table in tables
        }
