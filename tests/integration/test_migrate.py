"""Schema revisions: what ``ketenhub audit verify`` reads without Alembic is Alembic's answer."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic.script import ScriptDirectory

from hub.db import migrate


def test_the_head_revision_is_alembics_head() -> None:
    assert (
        migrate.head_revision() == ScriptDirectory.from_config(migrate._config()).get_current_head()
    )


def test_a_database_is_current_only_at_the_head(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    migrate.upgrade(url, "0002")
    assert not migrate.is_current(url)
    migrate.upgrade(url)
    assert migrate.is_current(url)


def test_a_database_that_is_not_the_hubs_is_not_current(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as raw:
        raw.execute("CREATE TABLE notes (text TEXT)")
    assert not migrate.is_current(f"sqlite:///{other}")
