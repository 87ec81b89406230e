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
    """One DBAPI connection, and the dialect its statements must be written in."""

    def __init__(self, connection: Any, dialect: str) -> None:
        self.connection = connection
        self.postgres = dialect == "postgresql"

    def run(self, statement: str, params: dict[str, Any] | None = None) -> Any:
        cursor = self.connection.cursor()
        cursor.execute(_for(statement, self.postgres), params or {})
        return cursor

    def rows(self, statement: str, params: dict[str, Any] | None = None) -> list[Row]:
        rows: list[Row] = self.run(statement, params).fetchall()
        return rows

    def row(self, statement: str, params: dict[str, Any] | None = None) -> Row | None:
        found: Row | None = self.run(statement, params).fetchone()
        return found


_NAMED = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


@cache
def _for(statement: str, postgres: bool) -> str:
    return _NAMED.sub(r"%(\1)s", statement) if postgres else statement


def json_text(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def timestamp(value: datetime | None) -> str | None:
    return None if value is None else format_timestamp(value)


def parse_timestamp(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)
