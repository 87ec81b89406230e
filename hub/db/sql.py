"""One DBAPI connection and the SQL both databases speak: ``:named`` parameters,
turned into psycopg's style for PostgreSQL; the stored forms of JSON and times."""

from __future__ import annotations

import json
import re
from datetime import datetime
from functools import cache
from typing import Any

from hub.domain.moments import format_timestamp

Row = tuple[Any, ...]


class Sql:
    """One DBAPI connection, and the dialect its statements must be written in.

    ``connection`` may be a pool's wrapper (SQLAlchemy's ``PoolProxiedConnection``) or
    the driver's own connection. Statements go to the driver's connection itself: the
    wrapper's ``cursor()`` is a Python call per statement (about 1 µs, eight statements
    an exchange), and on SQLite ``Connection.execute`` makes its cursor in C.
    """

    def __init__(self, connection: Any, dialect: str) -> None:
        self.connection = connection
        self.postgres = dialect == "postgresql"
        self.driver = getattr(connection, "dbapi_connection", None) or connection

    def run(self, statement: str, params: dict[str, Any] | None = None) -> Any:
        """Execute one statement; the cursor, for its rows or its ``rowcount``.

        On PostgreSQL a statement given no parameters goes as a simple query, which may
        hold several statements (``;``-separated): one round trip for them all.
        """
        if self.postgres:
            cursor = self.driver.cursor()
            cursor.execute(_for(statement), params)
            return cursor
        return self.driver.execute(statement, params or ())

    def rows(self, statement: str, params: dict[str, Any] | None = None) -> list[Row]:
        rows: list[Row] = self.run(statement, params).fetchall()
        return rows

    def row(self, statement: str, params: dict[str, Any] | None = None) -> Row | None:
        found: Row | None = self.run(statement, params).fetchone()
        return found


_NAMED = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


@cache
def _for(statement: str) -> str:
    """A statement in psycopg's parameter style (``%(name)s``)."""
    return _NAMED.sub(r"%(\1)s", statement)


def json_text(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def timestamp(value: datetime | None) -> str | None:
    return None if value is None else format_timestamp(value)


def parse_timestamp(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)
