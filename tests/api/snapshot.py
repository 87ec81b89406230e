"""The whole database of a test hub as data, to prove that a refused request changed nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def snapshot(db_path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table, in a stable order."""
    with sqlite3.connect(db_path) as raw:
        tables = [
            name
            for (name,) in raw.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        return {
            table: sorted(raw.execute(f'SELECT * FROM "{table}"').fetchall(), key=repr)
            for table in tables
        }
