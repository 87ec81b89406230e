"""Fixtures every kind of test shares: the synthetic population and a migrated database."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.db import migrate
from hub.demo.population import Population, make_population


@pytest.fixture(scope="session")
def population() -> Population:
    return make_population(2026)


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database at the newest schema; tests copy it rather than migrate their own."""
    path = tmp_path_factory.mktemp("template") / "hub.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path
