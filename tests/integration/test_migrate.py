"""Schema revisions: what ``ketenhub audit verify`` reads without Alembic is Alembic's answer
(on the run's backend: ``KETENHUB_TEST_DATABASE``)."""

from __future__ import annotations

from alembic.script import ScriptDirectory

from hub.db import migrate
from tests.conftest import connect


def test_the_head_revision_is_alembics_head() -> None:
    assert (
        migrate.head_revision() == ScriptDirectory.from_config(migrate._config()).get_current_head()
    )


def test_a_database_is_current_only_at_the_head(empty_database_url: str) -> None:
    url = empty_database_url
    assert not migrate.is_current(url)
    for revision in ("0001", "0002"):
        migrate.upgrade(url, revision)
        assert not migrate.is_current(url)
    migrate.upgrade(url)
    assert migrate.is_current(url)


def test_a_database_that_is_not_the_hubs_is_not_current(empty_database_url: str) -> None:
    with connect(empty_database_url) as raw:
        raw.execute("CREATE TABLE notes (text TEXT)")
    assert not migrate.is_current(empty_database_url)
