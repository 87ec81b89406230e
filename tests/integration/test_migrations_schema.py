"""Alembic migrations are the only way the schema changes (issue #5), on SQLite and on
PostgreSQL (``KETENHUB_TEST_DATABASE``): ``ketenhub db upgrade`` on an empty database
gives exactly the schema ``hub.db.tables`` declares, and nothing in ``hub/`` makes
tables any other way."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect
from sqlalchemy.schema import MetaData

from hub.db import migrate, tables
from hub.db.database import create_engine

REPO = Path(__file__).resolve().parents[2]
ALEMBIC_OWN = {"alembic_version"}


def describe(engine: Engine) -> dict[str, Any]:
    """The schema as the database reports it: every table's columns (type as this
    dialect spells it, nullability, server default), primary key, indexes, unique
    constraints and foreign keys."""
    seen = inspect(engine)
    schema: dict[str, Any] = {}
    for table in sorted(set(seen.get_table_names()) - ALEMBIC_OWN):
        schema[table] = {
            "columns": {
                c["name"]: (
                    c["type"].compile(dialect=engine.dialect),
                    c["nullable"],
                    _default(c.get("default")),
                )
                for c in seen.get_columns(table)
            },
            "primary_key": seen.get_pk_constraint(table)["constrained_columns"],
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in seen.get_indexes(table)
            ),
            "unique": sorted(tuple(u["column_names"]) for u in seen.get_unique_constraints(table)),
            "foreign_keys": sorted(
                (tuple(f["constrained_columns"]), f["referred_table"])
                for f in seen.get_foreign_keys(table)
            ),
        }
    return schema


def declared(metadata: MetaData, engine: Engine) -> dict[str, Any]:
    """The same description of ``hub.db.tables``, compiled for ``engine``'s dialect."""
    schema: dict[str, Any] = {}
    for table in sorted(metadata.tables.values(), key=lambda t: t.name):
        schema[table.name] = {
            "columns": {
                c.name: (
                    c.type.compile(dialect=engine.dialect),
                    c.nullable,
                    _default(c.server_default.arg if c.server_default is not None else None),
                )
                for c in table.columns
            },
            "primary_key": [c.name for c in table.primary_key.columns],
            "indexes": sorted(
                (i.name, tuple(c.name for c in i.columns), bool(i.unique)) for i in table.indexes
            ),
            "unique": sorted(
                tuple(c.name for c in u.columns)
                for u in table.constraints
                if u.__class__.__name__ == "UniqueConstraint"
            ),
            "foreign_keys": sorted(
                (tuple(f.parent.name for f in fk.elements), fk.referred_table.name)
                for fk in table.foreign_key_constraints
            ),
        }
    return schema


def _default(value: object) -> str | None:
    """A server default as text; an identity/serial one is a default the schema does not
    declare (a key the hub numbers itself must not also be numbered by the server)."""
    return None if value is None else str(value)


def test_upgrade_from_an_empty_database_gives_exactly_the_declared_schema(
    empty_database_url: str,
) -> None:
    migrate.upgrade(empty_database_url)
    engine = create_engine(empty_database_url)
    try:
        found = describe(engine)
        expected = declared(tables.metadata, engine)
    finally:
        engine.dispose()
    assert sorted(found) == sorted(expected), "tables differ"
    for name, table in expected.items():
        assert found[name] == table, f"table {name} differs from hub/db/tables.py"


def test_upgrade_is_idempotent_and_current(empty_database_url: str) -> None:
    migrate.upgrade(empty_database_url)
    migrate.upgrade(empty_database_url)  # what every `ketenhub serve` start does
    assert migrate.is_current(empty_database_url)


def test_ketenhub_db_upgrade_migrates_a_new_database(empty_database_url: str) -> None:
    env = {"KETENHUB_DATABASE_URL": empty_database_url, "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "hub", "db", "upgrade"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert migrate.is_current(empty_database_url)


def test_nothing_in_the_hub_makes_tables_but_the_migrations() -> None:
    """``metadata.create_all`` (or a table's ``create``) would build a schema Alembic
    does not know about, and the next migration would then fail on it."""
    pattern = re.compile(r"\bcreate_all\s*\(|\.create\s*\(\s*(bind|engine|connection)\b")
    offenders = [
        f"{path.relative_to(REPO)}:{n}"
        for path in sorted((REPO / "hub").rglob("*.py"))
        if "migrations" not in path.parts
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []


def test_the_comparison_sees_the_revision_before_head_as_different(
    empty_database_url: str,
) -> None:
    """The check above is not vacuous: one revision short, the schema is not the head's."""
    script = ScriptDirectory.from_config(migrate._config())
    head = script.get_revision(script.get_current_head())
    assert head is not None
    assert isinstance(head.down_revision, str)
    migrate.upgrade(empty_database_url, head.down_revision)
    engine = create_engine(empty_database_url)
    try:
        assert describe(engine) != declared(tables.metadata, engine)
    finally:
        engine.dispose()
