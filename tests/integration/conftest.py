"""Fixtures the integration tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hub.db.database import SqlDatabase, create_engine


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[SqlDatabase]:
    """The hub's database on this run's backend (``database_url``), disposed after."""
    database = SqlDatabase(create_engine(database_url))
    yield database
    await database.dispose()
